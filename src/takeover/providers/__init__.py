"""Where nodes come from: ``local`` (agents you run); cloud adapters plug in behind ports.Provider."""
