"""medpipe.evaluation"""
