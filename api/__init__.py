"""The score lookup API: FastAPI over in-memory indexes of gold.scores / silver.features (delta-rs, no Spark).

``api.app.create_app(settings)`` builds the application; ``jobs.serve`` runs it under uvicorn;
``api.client.AegisClient`` is the typed client.
"""
