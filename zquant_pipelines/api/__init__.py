"""zquant v0.4's scheduler REST API (`zquant api`), served over the operations layer and the
catalog editor: ``app.py`` the routes, auth and serving, ``schemas.py`` zquant's request
and response records and how ours fill them."""
