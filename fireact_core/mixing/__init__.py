"""Dataset versions: the mix, its pool, the Mix page's views, exports, folders and Hub cards."""
