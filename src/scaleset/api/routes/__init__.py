"""One router per resource type."""
