"""Protocol codecs and the protocol classes packets surface to (installed as aioxdp.protocols)."""
