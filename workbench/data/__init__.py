"""Plain, immutable snapshots of the store for the screens; loaders import db only when called."""
