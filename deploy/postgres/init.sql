-- Run once by the postgres image on an empty volume (docker-compose.yaml): the warehouse gets
-- a database of its own next to the instance's `dagster`, so each is dumped and restored alone.
CREATE DATABASE zquant_warehouse;
