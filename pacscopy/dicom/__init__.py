"""DICOM on the network: peer addresses, status meanings, pacscopy's own C-STORE upper layer, pynetdicom helpers."""
