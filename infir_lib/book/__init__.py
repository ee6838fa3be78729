"""Tooling for the book itself, kept apart from the ML stages: the orientation chapter's figure and
tables, the figure geometry every chapter draws with, each chapter's measured time, and the student
edition (solutions stripped). No stage imports this package."""
