-- One database per service that keeps its own (POSTGRES_DB makes `hubbub`).
CREATE DATABASE hubbub_analytics;
CREATE DATABASE hubbub_listening;
CREATE DATABASE hubbub_notifications;
