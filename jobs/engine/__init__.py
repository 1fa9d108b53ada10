"""Everything that moves jobs through Redis. The job types never import it; it imports the author API."""
