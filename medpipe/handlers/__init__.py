"""medpipe.handlers"""
