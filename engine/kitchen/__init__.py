"""The synthetic kitchen: dishes, recipes, rendered cooking videos, dish images and cooking Q&A."""
