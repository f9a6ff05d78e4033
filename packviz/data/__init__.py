"""Stage 1, data: load matrices read from files, generated, or shipped as samples."""
