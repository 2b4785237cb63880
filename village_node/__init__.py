"""Village kiosk (to be built: issue #4)."""
