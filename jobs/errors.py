"""Exceptions a job raises to say how it failed. They carry a message only.

    JobError                 a failure; the attempt ends and the job fails for good
    ├── PermanentJobError    fails for good, whatever attempts are left (a 4xx, a bad address)
    └── RetryableJobError    worth another attempt (a 5xx, a timeout) while attempts remain
        └── JobTimeoutError  the attempt ran past the type's timeout

Any other exception fails the job for good too; its type and message land in the job's error.
"""


class JobError(Exception):
    """A job failed."""


class PermanentJobError(JobError):
    """Retrying cannot help."""


class RetryableJobError(JobError):
    """A later attempt may succeed."""


class JobTimeoutError(RetryableJobError):
    """An attempt ran past its job type's timeout; it counts as a failed attempt."""
