"""medpipe.networks"""
