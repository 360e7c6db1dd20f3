-- One schema per module; each module's own migrations fill its schema as it lands.
CREATE SCHEMA records;
CREATE SCHEMA scheduling;
CREATE SCHEMA consultation;
CREATE SCHEMA chronic_care;
CREATE SCHEMA surveillance;
CREATE SCHEMA interop;
