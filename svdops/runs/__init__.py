"""The run store: typed run documents and the atomic folder writer every bench writer and reader uses."""
