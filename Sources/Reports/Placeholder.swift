import Validation
