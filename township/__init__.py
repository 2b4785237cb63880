"""Township service-centre node (to be built: issue #5)."""
