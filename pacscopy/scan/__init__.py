"""The scan stage: walk volumes, read and hash each file once, parse its header, write rows to the index.

Kept empty: the scan's worker processes import pacscopy.scan.pool and must not import the scan itself.
"""
