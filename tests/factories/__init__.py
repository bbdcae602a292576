"""factory_boy factories, one module per feature. All share the Flask-SQLAlchemy session and
flush (never commit), so objects live inside the test's rolled-back transaction."""
