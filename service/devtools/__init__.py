"""Development tooling: ``jobsvc dev``, its embedded server and child processes."""
