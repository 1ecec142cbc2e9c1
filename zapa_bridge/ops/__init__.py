"""What operators watch: health checks, metrics counted in Redis, queue statistics."""
