"""Redis itself: connections, the layout of our keys, Lua scripts, and the task messages
we put on the broker's queues."""
