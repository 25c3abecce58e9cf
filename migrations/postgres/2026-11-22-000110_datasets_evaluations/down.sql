DROP TABLE evaluation_results;
DROP TABLE evaluations;
DROP TABLE datasets;
