"""medpipe.bundle"""
