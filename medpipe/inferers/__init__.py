"""medpipe.inferers"""
