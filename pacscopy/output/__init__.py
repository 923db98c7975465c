"""Everything pacscopy renders for people: tables, CSV/JSON, the HTML report."""
