"""Importers: dataset files on disk → Dataset and Sample rows, one transaction per import."""
