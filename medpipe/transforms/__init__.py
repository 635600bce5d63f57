"""medpipe.transforms"""
