-- The ledger gets a database of its own beside Airflow's metadata database.
CREATE DATABASE koho;
