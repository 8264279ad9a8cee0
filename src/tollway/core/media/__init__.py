"""The synchronous media routes' charging pipeline and the media store."""
