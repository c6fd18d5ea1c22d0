-- Databases next to Kosmos's own: MLflow's backend store and Feast's SQL registry
-- (their tables must not share a schema with Kosmos's).
CREATE DATABASE mlflow OWNER kosmos;
CREATE DATABASE feast OWNER kosmos;
