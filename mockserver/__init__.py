"""mockserver: an offline OpenAI-compatible upstream for holynb and any streaming client."""
