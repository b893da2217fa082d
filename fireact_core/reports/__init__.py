"""What the dashboards and the home page show: figures, charts, lineage, overview."""
