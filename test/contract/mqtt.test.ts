import { test } from 'uvu'
import { contract } from './suite'

contract('mqtt')
test.run()
