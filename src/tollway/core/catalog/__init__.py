"""The model catalog: models, their names, traits and characters, and the public model view."""
