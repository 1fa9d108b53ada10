"""What the API reads and writes in Redis, one store per resource."""
