"""The job types jobsvc ships. Only ``jobs.registry`` imports them."""
