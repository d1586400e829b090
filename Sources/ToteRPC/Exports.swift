@_exported import ToteWire
