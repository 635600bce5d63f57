"""medpipe.engines"""
