"""Job types of jobsvc and the machinery that runs them on ARQ. Never imports ``service``."""
