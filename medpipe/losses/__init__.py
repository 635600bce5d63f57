"""medpipe.losses"""
