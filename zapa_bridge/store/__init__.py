"""Redis itself: connections, and task messages made ready to be pushed in one command."""
