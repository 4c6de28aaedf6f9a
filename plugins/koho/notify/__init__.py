"""Getting word to people: mail through Airflow's SMTP provider."""
