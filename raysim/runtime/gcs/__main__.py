"""``python -m raysim.runtime.gcs``: start the GCS process."""

from raysim.runtime.gcs.server import main

main()
