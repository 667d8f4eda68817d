"""``python -m raysim.runtime.raylet``: start the raylet process."""

from raysim.runtime.raylet.server import main

main()
