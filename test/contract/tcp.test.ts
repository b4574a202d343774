import { test } from 'uvu'
import { contract } from './suite'

contract('tcp')
test.run()
