"""placeholder"""
def write_datacard(result, out):
    pass
