"""DICOM on the network: peers (peer.py), pacscopy's own C-STORE upper layer (storelink.py), pynetdicom as SCU (scu.py), encoding (codec.py)."""
