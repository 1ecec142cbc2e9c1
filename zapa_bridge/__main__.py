"""`python -m zapa_bridge`: the `zapa-bridge` command."""

from zapa_bridge.cli import main

main(prog_name="zapa-bridge")
