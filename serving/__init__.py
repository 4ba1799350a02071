"""The PostgreSQL serving store: schema migrations, the sync from gold/silver, and the API's queries.

May import conf and lakehouse only.
"""
