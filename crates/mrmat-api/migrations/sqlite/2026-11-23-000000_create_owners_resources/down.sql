DROP TABLE resources;
DROP TABLE owners;
