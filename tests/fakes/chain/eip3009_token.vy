# pragma version ~=0.4.3
# A test USDC: an ERC-20 with 6 decimals and EIP-3009 transferWithAuthorization (v, r, s), as USDC has
# it, for the x402 tests (tests/contract/test_x402.py). Anyone may mint: it is a test token.

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)

name: public(String[32])
version: public(String[8])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])
DOMAIN_SEPARATOR: public(bytes32)


@deploy
def __init__():
    self.name = "USD Coin"
    self.version = "2"
    self.symbol = "USDC"
    self.decimals = 6
    self.DOMAIN_SEPARATOR = keccak256(
        abi_encode(EIP712_DOMAIN_TYPEHASH, keccak256("USD Coin"), keccak256("2"), chain.id, self)
    )


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log Transfer(sender=empty(address), receiver=to, value=amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=msg.sender, receiver=to, value=amount)
    return True


@external
def transferWithAuthorization(
    owner: address,
    to: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    assert block.timestamp > validAfter, "authorization is not yet valid"
    assert block.timestamp < validBefore, "authorization is expired"
    assert not self.authorizationState[owner][nonce], "authorization is used"
    struct_hash: bytes32 = keccak256(
        abi_encode(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, owner, to, amount, validAfter, validBefore, nonce)
    )
    digest: bytes32 = keccak256(concat(b"\x19\x01", self.DOMAIN_SEPARATOR, struct_hash))
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address) and signer == owner, "invalid signature"
    self.authorizationState[owner][nonce] = True
    log AuthorizationUsed(authorizer=owner, nonce=nonce)
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=owner, receiver=to, value=amount)
